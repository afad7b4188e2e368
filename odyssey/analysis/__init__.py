"""Analysis of finished studies: variant statistics, functional ANOVA, figures and reports.

Nothing here imports torch: reports read Optuna storages only, so they stay quick to produce.
"""
