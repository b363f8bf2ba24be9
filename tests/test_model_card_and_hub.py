"""The model card and the Hub push path: `push_to_hub` of model and processor with huggingface_hub's network calls
replaced (no network here), the exact files each commit carries, then what would have been pushed loaded from a
folder in a process where seem_hf cannot be imported."""

from __future__ import annotations

from unittest import mock

import numpy as np
import PIL.Image
import pytest
import torch
from huggingface_hub import CommitInfo, HfApi, RepoUrl
from transformers import AutoModel, AutoProcessor

from seem_hf.model_card import model_card, write_model_card
from seem_hf.testing import FIXTURES

from .helpers import run_without_seem_hf


class _FakeHub:
    """Records every commit: {path in repo: bytes}."""

    def __init__(self):
        self.commits, self.repos = [], []

    def create_repo(self, api, repo_id, **kwargs):
        self.repos.append(repo_id)
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def create_commit(self, api, repo_id, operations, **kwargs):
        files = {}
        for operation in operations:
            source = operation.path_or_fileobj
            files[operation.path_in_repo] = source if isinstance(source, bytes) else open(source, "rb").read()
        self.commits.append({"repo_id": repo_id, "files": files, "message": kwargs.get("commit_message")})
        return CommitInfo(commit_url=f"https://huggingface.co/{repo_id}/commit/0", commit_message="",
                          commit_description="", oid="0" * 40)


@pytest.fixture
def hub(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # any call that escapes the mocks fails at once
    fake = _FakeHub()
    with mock.patch.object(HfApi, "create_repo", autospec=True, side_effect=fake.create_repo), \
            mock.patch.object(HfApi, "create_commit", autospec=True, side_effect=fake.create_commit):
        yield fake


@pytest.mark.parametrize("name", ["seem", "lseg", "detr_panoptic"])
def test_push_model_and_processor_then_load_without_seem_hf(tmp_path, hub, name):
    folder = FIXTURES / f"tiny-random-{name}"
    model, processor = AutoModel.from_pretrained(folder), AutoProcessor.from_pretrained(folder)
    metrics = {"eval_pq": 12.5, "eval_miou": 40.25}
    model.push_to_hub("me/tiny", model_card_kwargs={"metrics": metrics, "training_data": "The bundled shapes.",
                                                    "training": "`python examples/finetune.py`"})
    processor.push_to_hub("me/tiny")
    assert hub.repos == ["me/tiny", "me/tiny"] and len(hub.commits) == 2
    model_files, processor_files = (set(commit["files"]) for commit in hub.commits)
    model_code = {path for path in model_files if path.endswith(".py")}
    processor_code = {path for path in processor_files if path.endswith(".py")}
    assert f"modeling_{name}.py" in model_code and f"processing_{name}.py" in processor_code
    assert not list(folder.glob("*.py"))  # the shipped fixture carries no bundle; the pushed folder carries its code
    assert {"remote_code.py", "image_utils.py", f"configuration_{name}.py"} <= model_code | processor_code
    assert model_files - model_code == {"README.md", "config.json", "model.safetensors"}
    tokenizer = {"tokenizer.json", "tokenizer_config.json"} if name != "detr_panoptic" else set()
    assert processor_files - processor_code == {"processor_config.json", "README.md"} | tokenizer
    card = hub.commits[0]["files"]["README.md"].decode()
    assert "| eval_miou | 40.25 |" in card and "The bundled shapes." in card and 'from_pretrained("me/tiny"' in card
    assert card.startswith("---\nlibrary_name: transformers\n")

    # what the Hub would hold: the processor's files, then the model's (its card last)
    pushed = tmp_path / "pushed"
    pushed.mkdir()
    for commit in hub.commits[1:] + hub.commits[:1]:
        for path, content in commit["files"].items():
            (pushed / path).write_bytes(content)
    image = np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    np.save(tmp_path / "image.npy", image)
    with torch.no_grad():
        inputs = processor(images=PIL.Image.fromarray(image), return_tensors="pt")
        expected_logits = model(**inputs)[1 if name == "seem" else 0]
    torch.save(expected_logits, tmp_path / "expected.pt")
    output = run_without_seem_hf(f"""
        import numpy as np, PIL.Image, torch
        from transformers import AutoModel, AutoProcessor
        model = AutoModel.from_pretrained({str(pushed)!r}, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained({str(pushed)!r}, trust_remote_code=True)
        assert "seem_hf" not in type(model).__module__, type(model).__module__
        inputs = processor(images=PIL.Image.fromarray(np.load({str(tmp_path / 'image.npy')!r})), return_tensors="pt")
        with torch.no_grad():
            logits = model(**inputs)[{1 if name == "seem" else 0}]
        torch.testing.assert_close(logits, torch.load({str(tmp_path / 'expected.pt')!r}, weights_only=True))
        print("loaded", type(model).__name__)
    """)
    assert "loaded" in output


def test_card_is_written_on_save_and_never_overwrites_the_user_s(tmp_path):
    model = AutoModel.from_pretrained(FIXTURES / "tiny-random-lseg")
    model.save_pretrained(tmp_path / "a")
    card = (tmp_path / "a" / "README.md").read_text()
    assert "LSeg" in card and "Not evaluated." in card
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "README.md").write_text("my own card")
    model.save_pretrained(tmp_path / "b")
    assert (tmp_path / "b" / "README.md").read_text() == "my own card"
    write_model_card(model, tmp_path / "b", metrics={"eval_miou": 51.7})
    assert "| eval_miou | 51.7 |" in (tmp_path / "b" / "README.md").read_text()
    with pytest.raises(ValueError, match="license"):
        model_card(model, license="proprietary")


def test_push_adapter_then_load_it_without_seem_hf(tmp_path, hub):
    """A PEFT adapter made by seem_hf (bottlenecks + LoRA + trained norms) pushed beside its base model loads with
    transformers' own adapter route (`AutoModel.from_pretrained(adapter_repo)`) where seem_hf is not installed,
    and gives the adapted model's outputs."""
    from seem_hf.adapters import prepare_for_fine_tuning

    torch.manual_seed(0)
    base = AutoModel.from_pretrained(FIXTURES / "tiny-random-seem")
    base.push_to_hub("me/base")
    base_folder = tmp_path / "base"
    base_folder.mkdir()
    for path, content in hub.commits[-1]["files"].items():
        (base_folder / path).write_bytes(content)
    adapted = prepare_for_fine_tuning(base, "freeze_backbone_adapt_head", bottleneck_size=8)
    with torch.no_grad():  # as if trained: the zero-initialised up-projections move too
        for parameter in adapted.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.05)
    adapted.peft_config["default"].base_model_name_or_path = str(base_folder)  # the Hub id, where there is a Hub
    adapted.push_to_hub("me/adapter")
    files = hub.commits[-1]["files"]
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(files)
    adapter_folder = tmp_path / "adapter"
    adapter_folder.mkdir()
    for path, content in files.items():
        (adapter_folder / path).write_bytes(content)
    pixel_values, ids = torch.randn(1, 3, 64, 64), torch.randint(1, 1000, (3, 77))
    with torch.no_grad():
        expected = adapted.eval()(pixel_values=pixel_values, input_ids=ids).masks_queries_logits
        unadapted = AutoModel.from_pretrained(base_folder).eval()(pixel_values=pixel_values, input_ids=ids)
    assert not torch.allclose(expected, unadapted.masks_queries_logits)
    torch.save({"pixel_values": pixel_values, "ids": ids, "expected": expected}, tmp_path / "io.pt")
    output = run_without_seem_hf(f"""
        import torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(adapter_folder)!r}, trust_remote_code=True).eval()
        io = torch.load({str(tmp_path / 'io.pt')!r}, weights_only=True)
        with torch.no_grad():
            logits = model(pixel_values=io["pixel_values"], input_ids=io["ids"]).masks_queries_logits
        torch.testing.assert_close(logits, io["expected"], rtol=1e-5, atol=1e-5)
        print("adapted", type(model).__name__)
    """)
    assert "adapted SeemForUniversalSegmentation" in output
