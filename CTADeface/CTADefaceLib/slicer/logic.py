"""What the CTADeface module does, without Qt: the GUI, the batch script and the tests all call this.

Every MRML access goes through `slicerbridge`; every defacing step is the core pipeline's
(`deface_image`, `write_outputs`, `groundtruth.add_case`), so a volume defaced in Slicer gets the
same fill, post-processing and provenance sidecar as one defaced with the `ctadeface` command.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..io.names import safe_file_name
from ..pipeline import DefaceSettings, deface_image, output_paths, write_outputs

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..records import Sidecar

log = logging.getLogger(__name__)

EXPORT_FORMATS = (".nii.gz", ".nrrd", ".mha")


def _bridge():
    from . import bridge as slicerbridge  # imports slicer: only on first use, so this file imports anywhere

    return slicerbridge


class DefaceLogic:
    """deface -> (edit the segmentation in Segment Editor) -> applyDefacing / export / saveGroundTruth."""

    def __init__(self):
        #: Provenance of the last engine run per segmentation node id: export() puts it in the sidecar.
        # the provenance of each segmentation's mask: from deface_image, or a sidecar read back (records.py)
        self.provenanceBySegmentation: dict[str, Mapping[str, Any]] = {}

    # ------------------------------------------------------------------ face mask
    def deface(self, volumeNode, settings: DefaceSettings | None = None, engine=None):
        """Run the engine in this process and return a segmentation node with the segment "Face"."""
        bridge = _bridge()
        settings = settings or DefaceSettings()
        image = bridge.image_from_volume(volumeNode)
        result = deface_image(image, settings, engine=engine, name=bridge.node_name(volumeNode))
        segmentationNode = bridge.segmentation_from_mask(result.mask, volumeNode)
        self.provenanceBySegmentation[bridge.node_id(segmentationNode)] = result.provenance
        return segmentationNode

    def startDeface(self, volumeNode, settings: DefaceSettings | None = None, workFolder: str | None = None):
        """Start the engine in a child process (the GUI's way: responsive, cancellable).

        The volume goes to the child as a file in a fresh temporary folder (inside `workFolder` when given);
        that folder holds a copy of the undefaced CT, so it is deleted when the run is over: by finishDeface,
        by the process's cancel(), or here if the child cannot start.
        Returns a `child_process.DefaceProcess`; when it has finished, call `finishDeface`.
        """
        from ..io.volume import write_image_atomic
        from .child_process import DefaceProcess, build_deface_command

        settings = replace(settings or DefaceSettings(), output_format=".nii.gz")
        if workFolder:
            os.makedirs(workFolder, exist_ok=True)
        runFolder = tempfile.mkdtemp(prefix="ctadeface-", dir=workFolder or None)
        try:
            inputPath = os.path.join(runFolder, "input.nii.gz")
            write_image_atomic(_bridge().image_from_volume(volumeNode), inputPath, overwrite=True)
            outputFolder = os.path.join(runFolder, "out")
            process = DefaceProcess(build_deface_command(inputPath, outputFolder, settings))
            process.paths = output_paths(inputPath, outputFolder, ".nii.gz")
            process.workFolder = runFolder
            process.add_cleanup(lambda: shutil.rmtree(runFolder, ignore_errors=True))
            return process.start()
        except BaseException:
            shutil.rmtree(runFolder, ignore_errors=True)
            raise

    def finishDeface(self, process, volumeNode):
        """The segmentation node from a finished child process; raises DefaceError with its message on failure.
        The child's temporary folder is deleted either way."""
        import json

        from ..errors import DefaceError

        try:
            process.wait()
            message = process.error_message()
            if message:
                raise DefaceError(message)
            bridge = _bridge()
            mask = read_image_mask(process.paths["mask"], bridge.image_from_volume(volumeNode))
            segmentationNode = bridge.segmentation_from_mask(mask, volumeNode)
            with open(process.paths["sidecar"], encoding="utf-8") as handle:
                self.provenanceBySegmentation[bridge.node_id(segmentationNode)] = json.load(handle)
            return segmentationNode
        finally:
            cleanup = getattr(process, "cleanup", None)
            if cleanup is not None:
                cleanup()

    # ------------------------------------------------------------------ results
    def applyDefacing(self, volumeNode, segmentationNode, fill="p10", name: str | None = None):
        """A new volume node: the face segment's voxels set to the fill, all others bit-identical.

        The input node is never modified (the user can compare, re-edit and apply again).
        """
        bridge = _bridge()
        result = self._defaced(volumeNode, segmentationNode, DefaceSettings(fill=fill))
        defacedNode = bridge.volume_from_image(result.defaced, name or f"{bridge.node_name(volumeNode)} defaced")
        bridge.copy_volume_display(volumeNode, defacedNode)
        return defacedNode

    def export(
        self,
        volumeNode,
        segmentationNode,
        folder: str,
        fileFormat: str = ".nii.gz",
        settings: DefaceSettings | None = None,
        overwrite: bool = False,
        inputPath: str | None = None,
    ) -> Sidecar:
        """Write <name>_defaced, <name>_facemask and the <name>_deface.json sidecar via the core pipeline.

        `volumeNode` is the original (undefaced) volume: defacing is recomputed from the segmentation,
        so the files always match the mask that is exported with them.
        `inputPath`: the file (or DICOM folder) the volume was loaded from. Then the outputs are named after
        it exactly as `ctadeface deface` names them, and the sidecar records its path and sha256, so a later
        run can tell this input's outputs from another input's (caseoutputs.examine_case); it is never written.
        """
        bridge = _bridge()
        settings = replace(settings or DefaceSettings(), output_format=fileFormat)
        result = self._defaced(volumeNode, segmentationNode, settings)
        earlier = self.provenanceBySegmentation.get(bridge.node_id(segmentationNode))
        if earlier:  # say which model made the mask, and that a person may have edited it afterwards
            result.provenance["mask_source"] = {
                k: earlier.get(k) for k in ("engine", "model", "model_sha256", "device")
            }
            result.provenance["mask_source"]["edited_in_slicer"] = "possibly"
        name = safe_file_name(bridge.node_name(volumeNode))
        if inputPath is None:
            paths = output_paths(os.path.join(folder, name + fileFormat), folder, fileFormat)
            return write_outputs(result, paths, overwrite=overwrite, extra={"input": {"slicer_node": name}})
        from ..io.volume import input_digest

        paths = output_paths(inputPath, folder, fileFormat)
        source = {"path": os.path.abspath(inputPath), "sha256": input_digest(inputPath), "slicer_node": name}
        protect = (inputPath,) if os.path.isfile(inputPath) else ()
        return write_outputs(result, paths, overwrite=overwrite, protect=protect, extra={"input": source})

    def exportDicom(
        self, volumeNode, segmentationNode, folder: str, settings: DefaceSettings | None = None, addToDatabase=False
    ) -> dict:
        """The volume's DICOM series (it must come from the DICOM database), defaced with the segmentation's face
        segment as it is now and de-identified, into `folder`; imported into the DICOM database if asked.
        See dicom_export.export_dicom."""
        from .dicom_export import export_dicom

        return export_dicom(volumeNode, segmentationNode, folder, settings, add_to_database=addToDatabase)

    def saveGroundTruth(self, volumeNode, segmentationNode, datasetFolder: str) -> str:
        """Append the volume and its (corrected) face mask to an nnU-Net v2 dataset; returns the case id."""
        from ..groundtruth import add_case

        bridge = _bridge()
        image = bridge.image_from_volume(volumeNode)
        mask = bridge.mask_from_segmentation(segmentationNode, volumeNode)
        return add_case(
            datasetFolder,
            image,
            mask,
            source={"slicer_node": bridge.node_name(volumeNode), "mask": bridge.node_name(segmentationNode)},
        )

    # ------------------------------------------------------------------ helpers
    def _defaced(self, volumeNode, segmentationNode, settings: DefaceSettings):
        bridge = _bridge()
        image = bridge.image_from_volume(volumeNode)
        mask = bridge.mask_from_segmentation(segmentationNode, volumeNode)
        # No model runs, and no post-processing: the segment already had it when it was made, and a
        # person may have edited it since; the defacing must remove exactly what the segment shows.
        settings = replace(settings, largest_component=False, fill_holes=False, margin_mm=0.0)
        return deface_image(image, settings, mask=mask, name=bridge.node_name(volumeNode))


def read_image_mask(path: str, reference):
    """Read a mask file written by the CLI and put it on `reference`'s grid (it was written from it)."""
    import SimpleITK as sitk

    mask = sitk.ReadImage(path)
    if mask.GetSize() != reference.GetSize():
        raise ValueError(f"{path} does not match the volume's size.")
    mask.CopyInformation(reference)  # the file went through NIfTI; copy exact geometry back
    return mask
