"""vml: the Variance Minimizer Loss as a drop-in PyTorch criterion, plus the studies that test it."""
from .loss import (NonFiniteLossError, StableLossController, VarianceMinimizerLoss, VMLConfig, huber,
                   huber_slope, within_class_logit_variance)

__version__ = "0.1.0"
__all__ = ["VMLConfig", "StableLossController", "VarianceMinimizerLoss", "NonFiniteLossError", "huber",
           "huber_slope", "within_class_logit_variance", "__version__"]
