"""Set-prediction losses shared by the models: Hungarian matching and mask losses on sampled points."""

from seem_hf.loss.global_mean import global_mean_denominator, global_mean_denominators
from seem_hf.loss.mask_losses import full_resolution_mask_losses, point_sampled_mask_losses
from seem_hf.loss.matcher import HungarianMatcher
from seem_hf.loss.point_sampling import sample_point, sample_points_by_uncertainty
from seem_hf.loss.set_criterion import SetCriterion, average_number_of_targets, local_target_count

__all__ = [
    "HungarianMatcher",
    "SetCriterion",
    "average_number_of_targets",
    "full_resolution_mask_losses",
    "global_mean_denominator",
    "global_mean_denominators",
    "local_target_count",
    "point_sampled_mask_losses",
    "sample_point",
    "sample_points_by_uncertainty",
]
