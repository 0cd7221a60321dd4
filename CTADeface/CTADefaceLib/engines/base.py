"""The one small interface every engine implements."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import SimpleITK as sitk


class Engine:
    """Image in, binary mask on the same grid out.

    Subclasses set `name` and implement `predict`. `describe()` feeds the provenance
    sidecar: it says what ran (model, checksum, device, settings).
    """

    name = "engine"

    def predict(self, image: sitk.Image) -> sitk.Image:
        """Return a UInt8 SimpleITK image, 1 where the face is, on `image`'s exact grid."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name}
