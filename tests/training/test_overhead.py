"""The batch-1 shortcuts give the same numbers as the general code: the training loop's loss sum
kept in a tensor, and the next-step loss of an unpadded batch without a mask."""

import copy

import pytest
import torch

from odyssey.model.network import SequenceNetwork
from odyssey.tasks import make_task
from odyssey.tasks.core.base import Batch
from odyssey.tasks.core.objectives import NextStepBinary, _valid_frames
from odyssey.training.loop import Diverged, _noisy, train_epoch


def test_the_unmasked_next_step_loss_is_the_masked_one_bit_for_bit():
    torch.manual_seed(0)
    objective = NextStepBinary(5)
    outputs = torch.randn(9, 1, 5, requires_grad=True)
    batch = Batch(inputs=torch.zeros(9, 1, 3), lengths=torch.tensor([9]), targets=(torch.rand(9, 1, 5) > 0.5).float())
    loss = objective.loss(outputs, batch)
    (grad,) = torch.autograd.grad(loss, outputs)
    nll = torch.nn.functional.binary_cross_entropy_with_logits(outputs, batch.targets, reduction="none").sum(-1)
    mask = _valid_frames(batch.lengths, 9, outputs.device)
    masked = (nll * mask).sum() / mask.sum()
    (masked_grad,) = torch.autograd.grad(masked, outputs)
    assert torch.equal(loss, masked) and torch.equal(grad, masked_grad)
    with torch.no_grad():
        assert objective.metric(outputs, batch) == (float((nll * mask).sum()), 9.0)
        short = Batch(inputs=batch.inputs, lengths=torch.tensor([6]), targets=batch.targets)  # padded: masked as before
        assert objective.metric(outputs, short)[1] == 6.0


@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_train_epoch_sums_the_losses_as_python_did(noise):
    task = make_task("adding", length=10, train=40, validation=8, test=8)
    torch.manual_seed(0)
    model = SequenceNetwork(
        input_size=task.input_size, hidden_size=6, output_size=task.output_size, variant="V", bidirectional=False
    )
    twin = copy.deepcopy(model)
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, nesterov=True) for m in (model, twin)]
    mean = train_epoch(
        model, task, optimizers[0], batch_size=1, noise=noise, generator=torch.Generator().manual_seed(3), epoch=1
    )
    generator, total, count = torch.Generator().manual_seed(3), 0.0, 0
    for batch in task.batches("train", 1, shuffle=True, generator=generator):  # the loop as it was
        optimizers[1].zero_grad(set_to_none=True)
        loss = task.loss(twin(_noisy(batch, noise, generator), batch.lengths), batch)
        loss.backward()
        optimizers[1].step()
        total, count = total + loss.item(), count + 1
    assert mean == total / count
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))


def test_a_non_finite_loss_stops_the_epoch():
    task = make_task("adding", length=10, train=40, validation=8, test=8)
    model = SequenceNetwork(
        input_size=task.input_size, hidden_size=6, output_size=task.output_size, variant="V", bidirectional=False
    )
    with torch.no_grad():
        model.head.bias.fill_(float("nan"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(Diverged, match="training loss became nan in epoch 4"):
        train_epoch(
            model, task, optimizer, batch_size=1, noise=0.0, generator=torch.Generator().manual_seed(0), epoch=4
        )
