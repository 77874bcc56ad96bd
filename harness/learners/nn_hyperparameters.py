"""Neural-network hyperparameters, one dict per network, with units and sources (airbench style).

Kept free of torch imports so that specs can be built without loading torch. Every entry goes
into the run spec, so changing one here retrains instead of reusing stale results.

Sources for the full profile: the standard CIFAR ResNet recipe used by LDAM-DRW (Cao et al.
2019) and Kang et al. (2020), which the paper follows: SGD, momentum 0.9, batch 128, peak
learning rate 0.1, weight decay 2e-4, 200 epochs. We use a cosine schedule instead of their step
decay (the issue asks for cosine; both reach the same accuracy on CIFAR-10 at 200 epochs).

The quick profile is sized for CPU throughput (measured on 2 cores, channels_last, batch 256,
forward+backward): widths (16, 32, 64) at 16x16 px run at ~12,000 images/s; (32, 64, 128) at
16x16 px at ~6,700; the same networks at 32x32 px at ~3,700 and ~1,200.
"""

# Measurements every network can make of itself after training. They are read only once the
# network is trained, so runs that differ in these alone share one trained network
# (harness.runs.spec.training_key). The methods' own settings (SAM's radius, SimCLR's epochs, ...)
# live with each method (harness.methods) and enter a run's spec only when that method runs.
MEASUREMENT_SETTINGS = {
    "hessian_top_k": 0,        # >0: after training, measure this many top Hessian eigenvalues
    "hessian_samples": 1000,   # training images (un-augmented, BN in eval mode) the Hessian uses
    "hessian_tol": 1e-3,       # Lanczos (eigsh) relative tolerance of the top eigenvalues
    "loss_directions": 1,      # with hessian_top_k: filter-normalized directions the loss is traced along
}

RESNET34 = {
    "arch": "resnet34",        # torchvision ResNet-34, CIFAR stem (3x3 stride-1 conv, no max-pool)
    "image_size": 32,          # pixels (side); CIFAR-10's native size
    "epochs": 200,             # passes over the (resampled) training set
    "batch_size": 128,         # images per SGD step
    "lr": 0.1,                 # peak learning rate, cosine-annealed to 0 per step
    "momentum": 0.9,           # SGD momentum (Nesterov off)
    "weight_decay": 2e-4,      # L2 coefficient on all parameters
    "crop_padding": 4,         # pixels of zero padding before the random crop
    "device": "cpu",           # where it trains; set from --device when the spec is built
    **MEASUREMENT_SETTINGS,
}

SMALL_CNN = {
    "arch": "small_cnn",       # 3 x (conv3x3-BN-ReLU-maxpool), global average pool, linear
    "width": 16,               # channels of the first block; doubled per block
    "image_size": 16,          # pixels (side); CIFAR images area-downsampled 2x for CPU speed
    # 8, not 15, since version 0.3: the quick suite must fit 10 minutes on 2 cores (chosen on
    # cost, before the claims ran at 8 epochs; see the README's quick-profile note).
    "epochs": 8,               # passes over the (resampled) training set
    "batch_size": 128,         # images per SGD step
    "lr": 0.05,                # peak learning rate, cosine-annealed to 0 per step
    "momentum": 0.9,           # SGD momentum (Nesterov off)
    "weight_decay": 5e-4,      # L2 coefficient on all parameters
    "crop_padding": 2,         # pixels of zero padding before the random crop (4 px at 32 px, scaled)
    "device": "cpu",           # where it trains; set from --device when the spec is built
    **MEASUREMENT_SETTINGS,
}
