"""The remote-code bundler: shared modules copied once as flat siblings, imports rewritten, clear errors."""

import pytest

from seem_hf.remote_code import bundle_code


def _write(path, text):
    path.write_text(text)
    return path


def test_bundles_transitive_imports(tmp_path):
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    _write(
        folder / "image_processing_x.py",
        "from seem_hf.postprocessing import (\n    panoptic_segmentation,\n    semantic_segmentation as semantic,\n)\n"
        "def f():\n    from seem_hf.image_utils import validate_image\n    return validate_image\n",
    )
    written = bundle_code(folder)
    assert sorted(p.name for p in written) == ["image_utils.py", "postprocessing.py"]
    text = (folder / "image_processing_x.py").read_text()
    assert "from .postprocessing import panoptic_segmentation, semantic_segmentation as semantic\n" in text
    assert "    from .image_utils import validate_image\n" in text
    for path in folder.glob("*.py"):
        assert "seem_hf." not in path.read_text().replace("`seem_hf.", "")  # only prose mentions remain
    compile(text, "image_processing_x.py", "exec")


def test_rejects_imports_it_cannot_bundle(tmp_path):
    _write(tmp_path / "a.py", "import seem_hf.postprocessing\n")
    with pytest.raises(ValueError, match="from seem_hf.module import name"):
        bundle_code(tmp_path)
    (tmp_path / "a.py").write_text("from ..postprocessing import x\n")
    with pytest.raises(ValueError, match="absolute"):
        bundle_code(tmp_path)
    (tmp_path / "a.py").write_text("from seem_hf.models import detr_panoptic\n")
    with pytest.raises(ValueError, match="package"):
        bundle_code(tmp_path)
