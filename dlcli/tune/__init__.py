"""Hyperparameter search: a recipe's [tune] space searched by Optuna, trials trained in vmapped batches."""
