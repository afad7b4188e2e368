"""The English vocabulary that generated utterances (speech) and text lines (handwriting) are
drawn from: common words, so that espeak-ng pronounces them from its dictionary and the lines
read like text. No corpus ships offline, hence a list."""

from __future__ import annotations

import numpy as np

WORDS = tuple(
    """
    a about above across act add after again against age ago air all almost alone along already
    also always among an and animal another answer any appear apple are area arm around art as ask
    at away baby back bad ball bank base be bear beat beautiful because bed been before began begin
    behind best better between big bird black blood blue board boat body bone book both bottom box
    boy bread break bright bring brother brown build burn busy but buy by call came can capital car
    care carry case cat catch cause cell center certain chair chance change check child choose
    church circle city class clean clear climb clock close cloud coast cold colour come common
    company complete contain control cook cool copy corn corner cost could count country course
    cover cow cross crowd cry current cut dance dark day dead deal dear decide deep desert design
    did die different dinner direct do doctor does dog dollar done door double down draw dream
    dress drink drive drop dry during each ear early earth east easy eat edge egg eight either else
    end enemy energy enough enter equal even evening event ever every example except eye face fact
    fair fall family far farm fast father fear feel feet few field fight figure fill final find
    fine finger finish fire first fish five floor flower fly follow food foot for force forest form
    forward found four free fresh friend from front fruit full game garden gas gather gave general
    gentle get girl give glad glass go gold gone good got govern grass great green grew ground group
    grow guess guide gun hair half hand happen happy hard has hat have he head hear heart heat heavy
    held help her here high hill him his history hold hole home hope horse hot hour house how huge
    human hundred hunt hurry ice idea if important in inch industry inside instead into iron island
    it job join jump just keep key kill kind king kitchen knew know lady lake land language large
    last late laugh law lay lead learn least leave left leg less let letter level lie life lift
    light like line list listen little live long look lost lot loud love low machine made main make
    man many map mark market master match matter may me mean measure meat meet men middle might mile
    milk mind minute miss modern moment money month moon more morning most mother mountain mouth
    move much music must my name nation natural near need never new next night nine no noise north
    nose not note nothing notice now number ocean of off offer office often oil old on once one only
    open or order other our out over own page paint pair paper park part party pass past path pay
    people perhaps person pick picture piece place plain plan plant play please poem point poor
    position possible pound power press pretty print problem produce pull push put question quick
    quiet quite race rain raise ran rather reach read ready real reason red remember rest rich ride
    right ring river road rock room root rope rose round row rule run safe said sail salt same sand
    sat save saw say school science sea season seat second see seed seem sell send sense sent serve
    set seven several shall shape share sharp she ship shoe shop short should shoulder show side
    sign silver simple since sing sister sit six size skin sky sleep slow small smell smile snow so
    soft soil soldier some son song soon sound south space speak special speed spell spend spring
    square stand star start state station stay steel step stick still stone stood stop store storm
    story straight strange stream street strong student study such sudden sugar summer sun supply
    sure surface sweet swim system table tail take talk tall teach team tell ten test than thank
    that the their them then there these they thick thin thing think third this those though three
    through throw tie time tiny to today together told tomorrow too took top touch toward town track
    trade train travel tree trip trouble true try turn twelve twenty two under until up upon us use
    usual valley very village visit voice wait walk wall want war warm was wash watch water wave way
    we wear weather week weight well went were west what wheel when where which while white who
    whole why wide wife wild will win wind window winter wish with without woman wonder wood word
    work world would write wrong yard year yellow yes yet you young
    """.split()
)


def random_words(rng: np.random.Generator, low: int, high: int) -> list[str]:
    """Between low and high (inclusive) words drawn uniformly, with replacement."""
    return [WORDS[i] for i in rng.integers(len(WORDS), size=int(rng.integers(low, high + 1)))]
