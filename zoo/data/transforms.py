"""Per-batch image transforms on whole uint8 batches, on whatever device the batch is on.

Image DataModules keep their pixels as one ``uint8`` tensor and hand out raw batches; after
Lightning has moved a batch to the training device, :class:`ImageBatchTransform` augments it
(random rotation and shift, crop with padding, horizontal flip; training only) and normalizes it to float. One
vectorized operation per batch replaces a chain of per-image PIL transforms in DataLoader
workers, and on a GPU the work happens there.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from zoo.distributed import derive_seed


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad each image of ``x`` (N, C, H, W) by ``padding`` pixels on every side and cut an
    ``H x W`` window at an offset drawn independently for each image (torchvision's
    ``RandomCrop(size, padding)``, for a whole batch at once)."""
    if padding <= 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=x.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (N, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (N, 1, 1, W)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_hflip(x: torch.Tensor, generator: torch.Generator | None = None, p: float = 0.5) -> torch.Tensor:
    """Mirror each image of ``x`` (N, C, H, W) left-right with probability ``p``."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def affine(x: torch.Tensor, degrees: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate each image of ``x`` (N, C, H, W) by ``degrees[i]`` (counter-clockwise, about its
    centre) and move it by ``shift[i] = (dx, dy)`` pixels (right, down); pixels that come from
    outside the image are 0, others are interpolated bilinearly. Same dtype as ``x`` (uint8 is
    rounded back)."""
    n, _, h, w = x.shape
    theta = torch.deg2rad(degrees.to(torch.float32))
    cos, sin = torch.cos(theta), torch.sin(theta)
    # affine_grid maps output coordinates (in [-1, 1] units) to input ones: the inverse motion
    matrix = torch.zeros(n, 2, 3, device=x.device)
    matrix[:, 0, 0], matrix[:, 0, 1] = cos, -sin * h / w
    matrix[:, 1, 0], matrix[:, 1, 1] = sin * w / h, cos
    matrix[:, 0, 2] = -2.0 * shift[:, 0].float() / w
    matrix[:, 1, 2] = -2.0 * shift[:, 1].float() / h
    grid = F.affine_grid(matrix, list(x.shape), align_corners=False)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.round().clamp(0, 255).to(x.dtype) if x.dtype == torch.uint8 else out.to(x.dtype)


def random_affine(
    x: torch.Tensor, degrees: float, translate: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Rotate each image by an angle drawn uniformly from ``[-degrees, degrees]`` and move it by up
    to ``translate`` of its width/height in each direction (torchvision's ``RandomAffine(degrees,
    translate=(translate, translate))``, for a whole batch at once)."""
    if degrees <= 0 and translate <= 0:
        return x
    n, _, h, w = x.shape
    angles = (torch.rand(n, device=x.device, generator=generator) * 2 - 1) * degrees
    limits = torch.tensor([translate * w, translate * h], device=x.device)
    shift = ((torch.rand(n, 2, device=x.device, generator=generator) * 2 - 1) * limits).round()
    return affine(x, angles, shift)


class ImageBatchTransform:
    """Augment (training only) and normalize a batch of uint8 images.

    Args:
        mean: per-channel mean in ``[0, 1]`` units (one value per channel, or one for all).
        std: per-channel standard deviation in ``[0, 1]`` units.
        crop_padding: random crop with this much zero padding (0: no crop).
        hflip: random horizontal flips.
        rotate: random rotations by up to this many degrees either way (0: none).
        translate: random shifts by up to this fraction of the width/height (0: none).
        seed: seeds the augmentation's random generator (one per device and rank), so runs
            repeat and, under several processes, each rank draws its own crops and flips.
        rank: the rank whose generator :meth:`augment` uses (the DataModule sets it from the
            Trainer).
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        crop_padding: int = 0,
        hflip: bool = False,
        seed: int = 0,
        rank: int = 0,
        rotate: float = 0.0,
        translate: float = 0.0,
    ) -> None:
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        self.crop_padding = crop_padding
        self.hflip = hflip
        self.rotate = float(rotate)
        self.translate = float(translate)
        self.seed = seed
        self.rank = rank
        self._generators: dict[tuple[torch.device, int], torch.Generator] = {}
        self._scales: dict[tuple[torch.device, int], tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def augments(self) -> bool:
        return self.crop_padding > 0 or self.hflip or self.rotate > 0 or self.translate > 0

    def generator(self, device: torch.device) -> torch.Generator:
        """The generator of this rank on ``device``, seeded from ``(seed, rank)`` on first use."""
        key = (device, self.rank)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(
                derive_seed(self.seed, self.rank)
            )
        return self._generators[key]

    def random_state(self) -> dict[str, torch.Tensor]:
        """The states of this rank's generators, by device (for an exact resume)."""
        return {
            str(device): g.get_state() for (device, rank), g in self._generators.items() if rank == self.rank
        }

    def set_random_state(self, states: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`random_state` returned."""
        for device, state in states.items():
            self.generator(torch.device(device)).set_state(state)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Random rotation and shift, crop and flip, same dtype and shape as ``x``."""
        g = self.generator(x.device)
        x = random_affine(x, self.rotate, self.translate, g)
        x = random_crop(x, self.crop_padding, g)
        return random_hflip(x, g) if self.hflip else x

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(x / 255 - mean) / std`` per channel, as float32."""
        key = (x.device, x.shape[1])
        if key not in self._scales:
            channels = x.shape[1]
            mean = torch.tensor(self.mean * channels if len(self.mean) == 1 else self.mean)
            std = torch.tensor(self.std * channels if len(self.std) == 1 else self.std)
            if len(mean) != channels or len(std) != channels:
                raise ValueError(
                    f"normalization has {len(mean)} channel statistics for {channels}-channel images"
                )
            scale = 1.0 / (255.0 * std)
            self._scales[key] = (
                scale.view(1, -1, 1, 1).to(x.device),
                (-mean / std).view(1, -1, 1, 1).to(x.device),
            )
        scale, shift = self._scales[key]
        return x.float() * scale + shift

    def __call__(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        if train and self.augments:
            x = self.augment(x)
        return self.normalize(x)
