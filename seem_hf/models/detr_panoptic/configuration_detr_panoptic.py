"""DETR-panoptic configuration.

The configuration is transformers' `DetrConfig` (so every DETR field keeps its name and meaning) with three
changes that make the panoptic model work without timm and load the published checkpoints:

- the backbone is transformers' native `ResNetBackbone`, exposing all four stages (the mask head needs the
  stride-4, 8 and 16 maps besides the stride-32 one);
- a timm-style backbone description (`{"model_type": "timm_backbone", "backbone": "resnet50"}`, the layout of
  the public `detr-resnet-50-panoptic` config) is turned into the equivalent native `ResNetConfig`;
- the defaults are the released COCO-panoptic R50 model (250 labels, auxiliary decoding losses on).
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import DetrConfig, ResNetConfig

# (depths, layer type) of the timm ResNets that DETR checkpoints were trained with.
_TIMM_RESNETS = {
    "resnet18": ((2, 2, 2, 2), "basic", (64, 128, 256, 512)),
    "resnet34": ((3, 4, 6, 3), "basic", (64, 128, 256, 512)),
    "resnet50": ((3, 4, 6, 3), "bottleneck", (256, 512, 1024, 2048)),
    "resnet101": ((3, 4, 23, 3), "bottleneck", (256, 512, 1024, 2048)),
}
_ALL_STAGES = ["stage1", "stage2", "stage3", "stage4"]


def native_resnet_config(name: str = "resnet50") -> ResNetConfig:
    """Return the native `ResNetConfig` equivalent to the timm ResNet `name`, with all four stages as outputs."""
    if name not in _TIMM_RESNETS:
        raise ValueError(f"Unsupported DETR backbone {name!r}; expected one of {sorted(_TIMM_RESNETS)}.")
    depths, layer_type, hidden_sizes = _TIMM_RESNETS[name]
    return ResNetConfig(
        depths=list(depths),
        layer_type=layer_type,
        hidden_sizes=list(hidden_sizes),
        embedding_size=64,
        out_features=list(_ALL_STAGES),
    )


@strict
class DetrPanopticConfig(DetrConfig):
    r"""
    Configuration of [`DetrPanopticForSegmentation`]: DETR with the attention-map mask head, for panoptic,
    instance and semantic segmentation.

    All arguments are those of transformers' [`DetrConfig`]; the defaults describe the released
    `detr-resnet-50-panoptic` model (ResNet-50 backbone, 100 queries, 6 + 6 transformer layers of width 256,
    250 labels plus "no object"). `backbone_config` may be a native `ResNetConfig` (its four stages are used)
    or, for configs written by timm-backed DETR checkpoints, a `timm_backbone` dict naming a ResNet, which is
    converted to the native equivalent; `use_timm_backbone` and `use_pretrained_backbone` are accepted and
    ignored (no backbone weights are ever downloaded). Two fields are added: `mask_loss` (`"focal"`, DETR's
    focal + dice on every pixel, or `"points"`, Mask2Former's cross-entropy + dice on `mask_loss_points` sampled
    points, lighter in memory) and `mask_loss_points`. `dilation=True` is DETR's DC5: the last stage keeps
    stride 16 (its 3x3 convolutions dilate instead), so the transformer and the mask's attention maps see a map
    twice as fine, for four times the encoder tokens; the weights are those of the undilated backbone.

    Example:

    ```python
    >>> from seem_hf import DetrPanopticConfig, DetrPanopticForSegmentation

    >>> configuration = DetrPanopticConfig()  # the released R50 panoptic architecture
    >>> model = DetrPanopticForSegmentation(configuration)  # random weights
    >>> configuration = model.config
    ```
    """

    model_type = "detr_panoptic"

    auxiliary_loss: bool = True
    # "focal": DETR's focal + dice mask losses on every pixel; "points": binary cross-entropy + dice on
    # `mask_loss_points` uncertainty-sampled points per mask (Mask2Former's), whose memory does not grow with
    # the image size or the number of segments.
    mask_loss: str = "focal"
    mask_loss_points: int = 12544

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> DetrPanopticConfig:
        """Load a config saved by this class or by transformers' DETR (model_type "detr")."""
        config_dict, kwargs = cls.get_config_dict(pretrained_model_name_or_path, **kwargs)
        return cls.from_dict(config_dict, **kwargs)

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs) -> DetrPanopticConfig:
        if config_dict.get("model_type") == DetrConfig.model_type:
            config_dict = {**config_dict, "model_type": cls.model_type}
        return super().from_dict(config_dict, **kwargs)

    def __post_init__(self, **kwargs):
        kwargs.pop("use_timm_backbone", None)
        kwargs.pop("use_pretrained_backbone", None)
        kwargs.pop("backbone_kwargs", None)
        backbone_name = kwargs.pop("backbone", None)
        if "num_labels" not in kwargs and getattr(self, "id2label", None) is None:
            kwargs["num_labels"] = 250

        backbone = self.backbone_config
        if isinstance(backbone, dict) and backbone.get("model_type") == "timm_backbone":
            backbone = native_resnet_config(backbone.get("backbone") or "resnet50")
        elif isinstance(backbone, dict):
            backbone = dict(backbone)
            backbone.setdefault("out_features", list(_ALL_STAGES))
            backbone = ResNetConfig(**{k: v for k, v in backbone.items() if k != "model_type"})
        elif backbone is None:
            backbone = native_resnet_config(backbone_name or "resnet50")
        if getattr(backbone, "model_type", None) != "resnet":
            raise ValueError(
                f"DetrPanopticConfig needs a ResNet backbone (native `ResNetConfig`), got "
                f"{getattr(backbone, 'model_type', type(backbone).__name__)!r}."
            )
        if len(backbone.out_features) != 4:
            raise ValueError(
                "The panoptic mask head reads four backbone levels (strides 4, 8, 16, 32): "
                f"backbone_config.out_features must name four stages, got {backbone.out_features}."
            )
        if self.mask_loss not in ("focal", "points"):
            raise ValueError(f"mask_loss must be 'focal' (DETR) or 'points' (sampled BCE + dice), got {self.mask_loss!r}.")
        if self.dilation and backbone.layer_type != "bottleneck":
            raise ValueError(
                "dilation=True (DC5) dilates the last stage's bottleneck blocks, as DETR's R50/R101-DC5 do; this "
                f"backbone has {backbone.layer_type!r} blocks: use layer_type='bottleneck' or dilation=False."
            )
        self.backbone_config = backbone
        super().__post_init__(**kwargs)


DetrPanopticConfig.register_for_auto_class()

__all__ = ["DetrPanopticConfig", "native_resnet_config"]
