"""Models behind the fit/predict contract (``models``: the registry and the tabular models), the
engine's one training loop and the CIFAR networks' classifier (``engine``), their hyperparameters
(``nn_hyperparameters``) and the toy 2D MLP (``toy``). A learner calls a method's hooks where it
has the capability; it knows no method by name."""
