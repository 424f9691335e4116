"""The DINOv2 self-supervised meta-architecture: a student and its EMA teacher, with DINO, iBOT and KoLeo.

One training step (:meth:`SSLMetaArch.forward_backward`):

1. teacher (no grad) on the 2 global crops -> cls-token prototypes (crop order swapped so that student
   crop A is matched with teacher crop B) and the prototypes of the patches that are masked for the
   student; centred with softmax centering or Sinkhorn-Knopp;
2. student on ``[global crops (masked), local crops]`` through the backbone's multi-crop list form;
3. DINO loss on the cls tokens of all student crops vs both teacher crops, iBOT loss on masked patches,
   KoLeo on the student's global cls tokens; one backward of their weighted sum.

Then the trainer steps the optimiser and calls :meth:`SSLMetaArch.update_teacher` (EMA).

Reference: Oquab et al. 2023, "DINOv2: Learning Robust Visual Features without Supervision"
(``dinov2/train/ssl_meta_arch.py``).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from encoders.checkpoint import extract_backbone_state_dict, load_backbone_weights
from encoders.heads import DINOHead, ProjectionHead
from encoders.losses import DINOLoss, KoLeoLoss, SimDINOLoss, iBOTPatchLoss, masked_patch_alignment
from encoders.registry import create_model, get_model_spec
from encoders.train import distributed as dist_utils
from encoders.train.config import DINOConfig, IBOTConfig, PretrainConfig
from encoders.train.param_groups import fuse_params_groups, get_params_groups_with_decay
from encoders.utils.io import load_file
from encoders.utils.precision import autocast, autocast_dtype
from encoders.vision_transformer import DinoVisionTransformer

logger = logging.getLogger(__name__)


def build_backbone(cfg: PretrainConfig, student: bool) -> DinoVisionTransformer:
    """The registered backbone ``cfg.student.arch`` with training LayerScale and (student only) drop path.

    Overrides never change state-dict shapes, so the exported teacher loads with
    ``encoders.create_model(arch, pretrained=PATH)``.
    """
    s = cfg.student
    return create_model(
        s.arch,
        init_values=s.layerscale,
        drop_path_rate=s.drop_path_rate if student else 0.0,
        drop_path_uniform=s.drop_path_uniform,
    )


def check_crop_sizes(cfg: PretrainConfig, patch_size: int) -> None:
    """Every crop side must be a multiple of the patch size (``ValueError`` naming the valid neighbours)."""
    c = cfg.crops
    sizes = {"crops.global_crops_size": c.global_crops_size, "crops.local_crops_size": c.local_crops_size}
    if c.high_res_iterations > 0:
        sizes["crops.high_res_global_crops_size"] = c.high_res_global_crops_size
    for name, size in sizes.items():
        if size < patch_size or size % patch_size:
            lower = max(patch_size, size // patch_size * patch_size)
            raise ValueError(
                f"{name}={size} is not a multiple of the patch size {patch_size} of {cfg.student.arch}; "
                f"use --{name.replace('_', '-')} {lower} or {lower + patch_size}"
            )


Head = DINOHead | ProjectionHead


class SSLNetwork(nn.Module):
    """A backbone with its DINO head and optional separate iBOT head; the student or the teacher.

    The heads are :class:`DINOHead` (prototype logits, objective ``dinov2``) or :class:`ProjectionHead` (unit
    embeddings, objective ``simdino``). Keys: ``backbone.*``, ``dino_head.*``, ``ibot_head.*`` (as the official
    ``student`` / ``teacher`` dicts). Its :meth:`forward` does the whole per-step computation, so a DDP / FSDP
    wrapper sees one call.
    """

    def __init__(self, backbone: DinoVisionTransformer, dino_head: Head, ibot_head: Head | None = None):
        super().__init__()
        self.backbone = backbone
        self.dino_head = dino_head
        if ibot_head is not None:
            self.ibot_head = ibot_head

    @property
    def has_ibot_head(self) -> bool:
        return hasattr(self, "ibot_head")

    def forward(
        self,
        global_crops: torch.Tensor,
        local_crops: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
        mask_indices_list: torch.Tensor | None = None,
        upperbound: int = 0,
    ) -> dict[str, torch.Tensor]:
        """Backbone on ``[global (G*B, 3, S, S) masked by masks (G*B, N), local (L*B, 3, s, s)]``, then the heads.

        Returns (unsliced, so no output is a view; see :meth:`split_outputs`): ``global_cls`` ``(G*B, D)``
        (backbone), ``cls_after_head`` = DINO head of ``[local cls; global cls]`` (plus the masked-patch
        buffer rows with a shared head), ``global_cls_embedding`` ``(G*B, d)`` (the head's normalised bottleneck
        of the global cls tokens, detached, for monitoring), and with a separate iBOT head ``patch_after_head``.
        The patches at
        the flat indices ``mask_indices_list`` ``(M,)`` of the global crops are gathered into a zero buffer
        of ``max(upperbound, M)`` rows (static shapes for ``torch.compile``) before the head.
        """
        has_local = local_crops is not None and local_crops.shape[0] > 0
        if has_local:
            global_out, local_out = self.backbone.forward_features([global_crops, local_crops], [masks, None])
        else:
            global_out, local_out = self.backbone.forward_features(global_crops, masks), None
        global_cls = global_out["x_norm_clstoken"]  # (G*B, D)
        local_cls = local_out["x_norm_clstoken"] if has_local else global_cls[:0]  # (L*B, D)
        rows = [local_cls, global_cls]
        out: dict[str, torch.Tensor] = {"global_cls": global_cls.clone()}
        if mask_indices_list is not None:
            patches = global_out["x_norm_patchtokens"]  # (G*B, N, D)
            n_masked = mask_indices_list.shape[0]
            masked_buffer = patches.new_zeros(max(upperbound, n_masked), patches.shape[-1])  # (U, D)
            masked_buffer[:n_masked] = torch.index_select(patches.flatten(0, 1), 0, mask_indices_list)
            if self.has_ibot_head:
                out["patch_after_head"] = self.ibot_head(masked_buffer)  # (U, K_ibot)
            else:
                rows.append(masked_buffer)  # one head call on all rows (the head is row-wise)
        head = self.dino_head
        embedding = head.embed(torch.cat(rows))  # (L*B + G*B [+ U], d), unit rows
        out["cls_after_head"] = head.last_layer(embedding) if isinstance(head, DINOHead) else embedding  # (.., K | d)
        n_local = local_cls.shape[0]
        out["global_cls_embedding"] = embedding[n_local : n_local + global_cls.shape[0]].detach().clone()
        return out

    @staticmethod
    def split_outputs(out: dict[str, torch.Tensor], n_local: int, n_masked: int | None) -> dict[str, torch.Tensor]:
        """Slice :meth:`forward`'s outputs: ``local_cls_after_head`` ``(L*B, K)``, ``global_cls_after_head``
        ``(G*B, K)``, ``masked_patch_after_head`` ``(M, K_ibot)`` (when ``n_masked`` is not None), ``global_cls``."""
        n_global = out["global_cls"].shape[0]
        heads = out["cls_after_head"]
        res = {
            "global_cls": out["global_cls"],
            "global_cls_embedding": out["global_cls_embedding"],
            "local_cls_after_head": heads[:n_local],
            "global_cls_after_head": heads[n_local : n_local + n_global],
        }
        if n_masked is not None:
            if "patch_after_head" in out:
                res["masked_patch_after_head"] = out["patch_after_head"][:n_masked]
            else:
                res["masked_patch_after_head"] = heads[n_local + n_global : n_local + n_global + n_masked]
        return res


def normalized_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Mean entropy of the distributions ``probs (..., K)`` divided by ``ln K``: 1 uniform, 0 one-hot.

    On the teacher's centred DINO targets this tells the two collapse modes apart (Caron et al. 2021, sec. 5.3):
    centering alone drives the targets to uniform, sharpening alone to one-hot. Small-batch runs often end at the
    uniform extreme, where the DINO loss stays at ``ln K``.
    """
    p = probs.float().flatten(0, -2)
    entropy = -(p * p.clamp_min(1e-12).log()).sum(dim=-1).mean()
    return entropy / math.log(p.shape[-1])


@torch.no_grad()
def cross_view_similarity(view_a: torch.Tensor, view_b: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean cosine between two views' outputs ``(B, K)``, centred on their batch mean: of the same image
    (``teacher_crossview_same``, the diagonal) and of different images (``teacher_crossview_other``, about 0 after
    centring). Self-distillation can only sharpen what the first has above the second."""
    mean = torch.cat((view_a, view_b)).float().mean(dim=0, keepdim=True)
    a, b = F.normalize(view_a.float() - mean, dim=-1), F.normalize(view_b.float() - mean, dim=-1)
    cos = a @ b.T  # (B, B)
    n = cos.shape[0]
    same = cos.diagonal().mean()
    other = (cos.sum() - cos.diagonal().sum()) / max(n * (n - 1), 1)
    return {"teacher_crossview_same": same, "teacher_crossview_other": other}


def _local_tensors(params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Local shards of FSDP2 ``DTensor`` parameters (plain tensors pass through)."""
    return [p.to_local() if hasattr(p, "to_local") else p for p in params]


class SSLMetaArch(nn.Module):
    """Student + EMA teacher + losses of DINOv2 pretraining (the trainer's "meta-architecture").

    Implements the protocol of :class:`encoders.train.trainer.MetaArch`: :meth:`forward_backward`,
    :meth:`update_teacher`, :meth:`get_params_groups`, :meth:`clip_grad_norm_`,
    :meth:`prepare_for_distributed_training`, :meth:`export_backbone`; ``state_dict()`` holds student,
    teacher and the loss centers (keys ``student.backbone.*``, ``teacher.backbone.*``, ``dino_loss.center``...).

    Args:
        cfg: the pretraining config (model, heads, losses, centering, crops).
        device: where to build the networks.
    """

    def __init__(self, cfg: PretrainConfig, device: torch.device | str = "cpu"):
        super().__init__()
        self.cfg = cfg
        self.device = torch.device(device)
        if cfg.train.centering not in ("centering", "softmax", "sinkhorn_knopp"):
            raise ValueError(
                f"train.centering must be centering, softmax or sinkhorn_knopp, got {cfg.train.centering!r}"
            )
        self.centering: Literal["centering", "sinkhorn_knopp"] = (
            "sinkhorn_knopp" if cfg.train.centering == "sinkhorn_knopp" else "centering"
        )
        get_model_spec(cfg.student.arch)  # unknown names raise with suggestions

        student_backbone = build_backbone(cfg, student=True)
        teacher_backbone = build_backbone(cfg, student=False)
        self.patch_size = student_backbone.patch_size
        self.embed_dim = student_backbone.embed_dim
        check_crop_sizes(cfg, self.patch_size)
        if cfg.student.pretrained_weights:
            sd = extract_backbone_state_dict(load_file(cfg.student.pretrained_weights))
            load_backbone_weights(student_backbone, sd, source=cfg.student.pretrained_weights)
            logger.info("student initialised from %s", cfg.student.pretrained_weights)

        d, ib = cfg.dino, cfg.ibot
        self.do_dino = d.loss_weight > 0
        self.do_koleo = d.koleo_loss_weight > 0
        self.do_ibot = ib.loss_weight > 0
        self.ibot_separate_head = ib.separate_head and self.do_ibot
        if not (self.do_dino or self.do_ibot):
            raise ValueError("both dino.loss_weight and ibot.loss_weight are 0: nothing to train; enable one")
        if self.do_ibot and (max(ib.mask_ratio_min_max) <= 0 or ib.mask_sample_probability <= 0):
            raise ValueError(
                "the iBOT loss needs masks: set ibot.mask_ratio_min_max with a positive max and "
                "ibot.mask_sample_probability > 0, or disable it with --ibot.loss-weight 0"
            )
        if self.do_koleo and cfg.train.batch_size_per_gpu < 2:
            raise ValueError(
                "KoLeo needs at least 2 images per batch; raise train.batch_size_per_gpu or set "
                "--dino.koleo-loss-weight 0"
            )

        self.objective: Literal["dinov2", "simdino"] = getattr(cfg, "objective", "dinov2")
        if self.objective not in ("dinov2", "simdino"):
            raise ValueError(f"objective must be dinov2 or simdino, got {self.objective!r}")
        simdino = self.objective == "simdino"

        def head(c: DINOConfig | IBOTConfig) -> Head:
            sizes = dict(nlayers=c.head_nlayers, hidden_dim=c.head_hidden_dim, bottleneck_dim=c.head_bottleneck_dim)
            if simdino:
                return ProjectionHead(self.embed_dim, **sizes)
            return DINOHead(self.embed_dim, c.head_n_prototypes, **sizes)

        def networks(backbone: DinoVisionTransformer) -> SSLNetwork:
            return SSLNetwork(backbone, head(d), head(ib) if self.ibot_separate_head else None)

        self.student = networks(student_backbone)
        self.teacher = networks(teacher_backbone)
        self.teacher.load_state_dict(self.student.state_dict())
        self.teacher.requires_grad_(False)

        self.koleo_loss = KoLeoLoss()
        if simdino:
            self.simdino_loss = SimDINOLoss(cfg.simdino.coding_rate_eps, cfg.simdino.coding_rate_weight)
        else:
            self.dino_loss = DINOLoss(d.head_n_prototypes)
            ibot_out = ib.head_n_prototypes if self.ibot_separate_head else d.head_n_prototypes
            self.ibot_patch_loss = iBOTPatchLoss(ibot_out)
        self.to(self.device)

        self.autocast_dtype = autocast_dtype(cfg.train.precision, self.device)
        # wrappers live outside the module tree so that state_dict() keys stay official
        self._wrapped: dict[str, Any] = {"student": self.student, "teacher": self.teacher, "strategy": None}
        if cfg.train.compile:
            for net in (self.student, self.teacher):
                for blk in net.backbone.blocks:
                    blk.compile()
        if simdino:
            objective = f"SimDINO (embedding d={d.head_bottleneck_dim}, coding-rate eps={cfg.simdino.coding_rate_eps})"
        else:
            objective = f"DINO K={d.head_n_prototypes}, centering={self.centering}"
            if self.ibot_separate_head:
                objective += f", separate iBOT head K={ib.head_n_prototypes}"
        logger.info(
            "SSLMetaArch: %s (D=%d, patch %d), %s, autocast=%s",
            cfg.student.arch,
            self.embed_dim,
            self.patch_size,
            objective,
            self.autocast_dtype,
        )

    # ------------------------------------------------------------------------------------- distributed
    def prepare_for_distributed_training(self, strategy: Literal["ddp", "fsdp"] = "ddp") -> None:
        """Wrap the student for data-parallel training (no-op without a process group).

        ``ddp``: ``DistributedDataParallel`` over the student (the teacher is replicated and updated
        identically on every rank). ``fsdp``: ``fully_shard`` each transformer block and the whole network,
        for student and teacher alike (the EMA then runs on matching local shards).
        The teacher is re-copied from the (now rank-0-synchronised) student.
        """
        if not dist_utils.is_enabled():
            return
        if strategy == "ddp":
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [self.device.index] if self.device.type == "cuda" else None
            find_unused = self.ibot_separate_head and not self.do_dino  # the DINO head then gets no gradient
            ddp = DistributedDataParallel(self.student, device_ids=device_ids, find_unused_parameters=find_unused)
            self.teacher.load_state_dict(self.student.state_dict())
            self._wrapped.update(student=ddp, strategy="ddp")
        elif strategy == "fsdp":
            from torch.distributed.fsdp import fully_shard

            for p in self.student.parameters():  # same start on every rank (DDP broadcasts; FSDP does not)
                torch.distributed.broadcast(p.data, src=0)
            self.teacher.load_state_dict(self.student.state_dict())
            for net in (self.student, self.teacher):
                for blk in net.backbone.blocks:
                    fully_shard(blk)
                fully_shard(net, reshard_after_forward=True)
            self._wrapped.update(strategy="fsdp")
        else:
            raise ValueError(f"unknown strategy {strategy!r}; choose ddp or fsdp")

    @property
    def strategy(self) -> str | None:
        """``"ddp"``, ``"fsdp"`` or ``None`` (single process)."""
        return self._wrapped["strategy"]

    # ---------------------------------------------------------------------------------------- training
    def train(self, mode: bool = True) -> SSLMetaArch:
        """Student in ``mode``; the teacher always in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def _autocast(self):
        return autocast(self.device, self.autocast_dtype)

    @torch.no_grad()
    def get_teacher_output(
        self, global_crops: torch.Tensor, batch: dict[str, Any], teacher_temp: float
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
        """The teacher's targets and monitors.

        ``dinov2``: centred, sharpened probabilities for the cls tokens ``(2, B, K)`` (crops swapped: entry 0
        is the target of student crop 1) and the masked patches ``(M, K_ibot)`` or None. ``simdino``: the unit
        embeddings of the global crops ``(2, B, d)`` (not swapped) and of the masked patches ``(M, d)`` or None.
        Monitors: ``teacher_crossview_same`` / ``teacher_crossview_other``, the mean cosine between the two global
        views' teacher outputs (centred logits for dinov2, embeddings for simdino) of the same image and of
        different images; learning needs the first clearly above the second.
        """
        mask_indices = batch["mask_indices_list"] if self.do_ibot else None
        with self._autocast():
            raw = self.teacher(global_crops, mask_indices_list=mask_indices, upperbound=int(batch["upperbound"]))
        if self.strategy == "fsdp":
            self.teacher.reshard()  # the root keeps gathered parameters after forward; the EMA needs shards
        n_masked = mask_indices.shape[0] if mask_indices is not None else None
        out = SSLNetwork.split_outputs(raw, 0, n_masked)
        cls_after_head = out["global_cls_after_head"].float()  # (2B, K) logits or (2B, d) embeddings
        masked = out["masked_patch_after_head"].float() if self.do_ibot else None  # (M, K) or (M, d)
        if self.objective == "simdino":
            monitors = cross_view_similarity(*cls_after_head.chunk(2))
            return cls_after_head.view(2, -1, cls_after_head.shape[-1]), masked, monitors

        a, b = cls_after_head.chunk(2)
        cls_after_head = torch.cat((b, a))  # swapped: student crop 1 is matched with teacher crop 2
        ibot_targets = None
        if self.centering == "centering":
            self.dino_loss.apply_center_update()
            centred = cls_after_head - self.dino_loss.center
            monitors = cross_view_similarity(*centred.chunk(2))
            dino_targets = self.dino_loss.softmax_center_teacher(cls_after_head, teacher_temp=teacher_temp)
            self.dino_loss.update_center(cls_after_head)
            if self.do_ibot:
                ibot_targets = self.ibot_patch_loss.softmax_center_teacher(masked.unsqueeze(0), teacher_temp)[0]
                self.ibot_patch_loss.update_center(masked.unsqueeze(0))
        else:
            monitors = cross_view_similarity(*cls_after_head.chunk(2))
            dino_targets = self.dino_loss.sinkhorn_knopp_teacher(cls_after_head, teacher_temp=teacher_temp)
            if self.do_ibot:
                ibot_targets = self.ibot_patch_loss.sinkhorn_knopp_teacher(
                    masked, teacher_temp=teacher_temp, n_masked_patches_tensor=batch["n_masked_patches"]
                )
        return dino_targets.view(2, -1, dino_targets.shape[-1]), ibot_targets, monitors

    def forward_backward(self, batch: dict[str, Any], teacher_temp: float) -> dict[str, torch.Tensor]:
        """One step's losses (backpropagated into the student's ``.grad``), as detached scalars.

        ``batch``: the collate output (``collated_global_crops``, ``collated_local_crops``, ``collated_masks``,
        ``mask_indices_list``, ``masks_weight``, ``upperbound``, ``n_masked_patches``).
        Returns the loss terms as they enter the total, weights included: ``dinov2``: ``dino_local_crops_loss``,
        ``dino_global_crops_loss``, ``koleo_loss``, ``ibot_loss``; ``simdino``: ``simdino_alignment_loss``
        (``1 - cos`` of the views), ``simdino_coding_rate_loss`` (minus the weighted coding rate),
        ``simdino_patch_loss``, ``koleo_loss``; then ``total_loss`` and the monitors: ``student_cls_std`` (0 when every
        image gets the same backbone feature), ``head_spread`` (``sqrt(1 - |mean|^2)`` of the student head's unit
        outputs over the batch: 0 collapsed, 1 spread), the teacher cross-view cosines (see
        :meth:`get_teacher_output`), and for dinov2 ``teacher_entropy`` (see :func:`normalized_entropy`: near 1
        the teacher's DINO targets are uniform and the DINO loss sits at ``ln K`` with no signal; near 0 they are
        one-hot) and ``prototype_cosine`` (mean cosine between distinct prototypes of the student's DINO head).
        """
        dev = self.device
        global_crops = batch["collated_global_crops"].to(dev, non_blocking=True)
        local_crops = batch["collated_local_crops"].to(dev, non_blocking=True)
        masks = batch["collated_masks"].to(dev, non_blocking=True)
        mask_indices_list = batch["mask_indices_list"].to(dev, non_blocking=True)
        masks_weight = batch["masks_weight"].to(dev, non_blocking=True)
        n_masked_patches = mask_indices_list.shape[0]
        upperbound = int(batch["upperbound"])
        batch = {**batch, "mask_indices_list": mask_indices_list, "n_masked_patches": batch["n_masked_patches"].to(dev)}

        n_global_crops = 2
        if global_crops.shape[0] % n_global_crops:
            raise ValueError(f"expected 2 global crops per image, got {global_crops.shape[0]} global crops in total")
        n_images = global_crops.shape[0] // n_global_crops
        n_local_crops = local_crops.shape[0] // n_images

        teacher_cls, teacher_patches, monitors = self.get_teacher_output(global_crops, batch, teacher_temp)

        student = self._wrapped["student"]
        with self._autocast():
            raw = student(
                global_crops,
                local_crops,
                masks=masks,
                mask_indices_list=mask_indices_list if self.do_ibot else None,
                upperbound=upperbound,
            )
        out = SSLNetwork.split_outputs(raw, local_crops.shape[0], n_masked_patches if self.do_ibot else None)
        if self.objective == "simdino":
            losses = self._simdino_losses(out, teacher_cls, teacher_patches, n_local_crops, masks_weight)
        else:
            losses = self._dino_losses(out, teacher_cls, teacher_patches, n_local_crops, masks, masks_weight)
        if self.do_koleo and self.do_dino:
            cls = out["global_cls"].float()
            if self.cfg.dino.koleo_across_ranks:
                chunks = [dist_utils.all_gather_with_grad(c) for c in cls.chunk(2)]
            else:
                chunks = list(cls.chunk(2))
            # no KoLeo between the two crops of one image
            losses["koleo_loss"] = self.cfg.dino.koleo_loss_weight * sum(self.koleo_loss(p) for p in chunks)
        total = global_crops.new_zeros((), dtype=torch.float32)
        for value in losses.values():
            total = total + value
        total.backward()

        result = {k: v.detach() for k, v in losses.items()}
        result["total_loss"] = total.detach()
        with torch.no_grad():
            feats = F.normalize(out["global_cls"].float(), dim=-1)
            result["student_cls_std"] = feats.std(dim=0).mean() * math.sqrt(feats.shape[-1])
            embedding = out["global_cls_embedding"].float()  # (2B, d) unit rows
            result["head_spread"] = (1.0 - embedding.mean(dim=0).square().sum()).clamp_min(0.0).sqrt()
            result.update(monitors)
            if self.objective == "dinov2":
                if self.do_dino:
                    result["teacher_entropy"] = normalized_entropy(teacher_cls)
                result["prototype_cosine"] = self.student.dino_head.mean_prototype_cosine()
        return result

    def _dino_losses(
        self,
        out: dict[str, torch.Tensor],
        teacher_dino: torch.Tensor,
        teacher_ibot: torch.Tensor | None,
        n_local_crops: int,
        masks: torch.Tensor,
        masks_weight: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """DINO cross-entropy of every student crop against both teacher crops (1 / (2 + 2 L) per pair, no crop
        against itself) and iBOT on the masked patches, as the official ``forward_backward``."""
        n_terms = 2 + max(2 * n_local_crops, 1)
        losses: dict[str, torch.Tensor] = {}
        if self.do_dino:
            w = self.cfg.dino.loss_weight
            if n_local_crops > 0:
                local_loss = self.dino_loss(out["local_cls_after_head"].float().chunk(n_local_crops), teacher_dino)
                losses["dino_local_crops_loss"] = w * local_loss / n_terms
            global_loss = self.dino_loss([out["global_cls_after_head"].float()], [teacher_dino.flatten(0, 1)])
            losses["dino_global_crops_loss"] = w * global_loss * 2 / n_terms
        if self.do_ibot:
            ibot = self.ibot_patch_loss.forward_masked(
                out["masked_patch_after_head"].float(),
                teacher_ibot,
                student_masks_flat=masks,
                n_masked_patches=teacher_ibot.shape[0],
                masks_weight=masks_weight,
            )
            losses["ibot_loss"] = self.cfg.ibot.loss_weight * ibot  # official: * 2 (loss scales) * 1/2 (per crop)
        return losses

    def _simdino_losses(
        self,
        out: dict[str, torch.Tensor],
        teacher_cls: torch.Tensor,
        teacher_patches: torch.Tensor | None,
        n_local_crops: int,
        masks_weight: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """SimDINO: alignment of every student view with the teacher's other global views, minus the coding rate
        of each global view's batch (weight dino.loss_weight), and masked-patch alignment (ibot.loss_weight)."""
        losses: dict[str, torch.Tensor] = {}
        if self.do_dino:
            w = self.cfg.dino.loss_weight
            global_views = list(out["global_cls_after_head"].chunk(2))  # 2 x (B, d)
            local_views = list(out["local_cls_after_head"].chunk(n_local_crops)) if n_local_crops else []
            alignment, expansion = self.simdino_loss(global_views + local_views, list(teacher_cls))
            losses["simdino_alignment_loss"] = w * alignment
            losses["simdino_coding_rate_loss"] = -w * expansion
        if self.do_ibot:
            n_images = out["global_cls"].shape[0]
            patch = masked_patch_alignment(out["masked_patch_after_head"], teacher_patches, masks_weight, n_images)
            losses["simdino_patch_loss"] = self.cfg.ibot.loss_weight * patch
        return losses

    @torch.no_grad()
    def update_teacher(self, m: float) -> None:
        """EMA: ``teacher = m * teacher + (1 - m) * student`` for every parameter (local shards under FSDP)."""
        student = _local_tensors(list(self.student.parameters()))
        teacher = _local_tensors(list(self.teacher.parameters()))
        torch._foreach_mul_(teacher, m)
        torch._foreach_add_(teacher, student, alpha=1 - m)

    # -------------------------------------------------------------------------------------- optimiser
    def get_params_groups(self) -> list[dict[str, Any]]:
        """Fused AdamW groups (layer-wise lr decay, patch-embed lr x0.2, no wd on biases/norms) per student module."""
        o = self.cfg.optim
        groups: list[dict[str, Any]] = []
        for module in self.student.children():
            per_param = get_params_groups_with_decay(module, o.layerwise_decay, o.patch_embed_lr_mult)
            groups += fuse_params_groups(per_param)
        for g in groups:
            g["foreach"] = True
        return groups

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Clip the gradient norm of each student module (backbone, heads) to ``max_norm`` (official).

        Returns the norm before clipping over all of them (``sqrt`` of the summed squares); ``max_norm <= 0``
        only measures it.
        """
        norms = []
        for module in self.student.children():
            params = [p for p in module.parameters() if p.grad is not None]
            if not params:
                continue
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else float("inf"))
            norms.append(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
        return torch.stack(norms).square().sum().sqrt() if norms else torch.zeros(())

    # ------------------------------------------------------------------------------------------ export
    def export_backbone(self, path: str, which: Literal["teacher", "student"] = "teacher") -> None:
        """Write the teacher (default) backbone in the official key format with a JSON sidecar, so that
        ``encoders.create_model(arch, pretrained=path)`` loads it. Call on every rank under FSDP."""
        from encoders.checkpoint import save_backbone
        from encoders.train.checkpointing import full_model_state_dict

        net = self.teacher if which == "teacher" else self.student
        state = full_model_state_dict(net)
        if not dist_utils.is_main_process():
            return
        backbone_sd = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
        spec = get_model_spec(self.cfg.student.arch)
        export = create_model(spec.name, init_values=self.cfg.student.layerscale)
        export.load_state_dict(backbone_sd, strict=True)
        save_backbone(export, path, name=spec.name, overrides={})
