import json

import pytest
import torch

from model.generate import SamplingConfig, generate
from model.hf import export_hf, import_hf, open_model_dir
from model.model_dir import END_OF_TEXT, PAD, ModelDirError, load_model_dir, save_model_dir

transformers = pytest.importorskip("transformers")

PROMPT_TEXT = "On market day the"


@pytest.fixture(scope="module", params=[False, True], ids=["untied", "tied"])
def exported(request, model_dir, tmp_path_factory):
    """(our model directory, its Hugging Face export) for untied and tied embeddings."""
    source = model_dir(request.param)
    out = tmp_path_factory.mktemp("hf") / "export"
    export_hf(source, out)
    return source, out


@pytest.fixture(scope="module")
def hf_model(exported):
    return transformers.AutoModelForCausalLM.from_pretrained(exported[1], dtype=torch.float32).eval()


def test_model_directory_round_trip_keeps_weights_and_tokenizer(model_dir, trained_model, tokenizer):
    loaded = load_model_dir(model_dir(False))
    for name, tensor in trained_model(False).state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor), name
    assert loaded.tokenizer.to_str() == tokenizer.to_str()
    assert loaded.end_of_text_id == tokenizer.token_to_id(END_OF_TEXT)


def test_export_writes_a_llama_directory(exported):
    source, out = exported
    names = sorted(p.name for p in out.iterdir())
    assert names == ["config.json", "generation_config.json", "model.safetensors", "special_tokens_map.json",
                     "tokenizer.json", "tokenizer_config.json"]
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    ours = json.loads((source / "model.json").read_text())["config"]
    assert config["tie_word_embeddings"] == ours["tie_embeddings"]


def test_hf_logits_equal_ours(exported, hf_model, tokenizer):
    torch.manual_seed(0)
    ours = load_model_dir(exported[0]).model
    assert type(hf_model).__name__ == "LlamaForCausalLM"
    tokens = torch.randint(0, tokenizer.get_vocab_size(), (2, 40))
    with torch.no_grad():
        expected = ours(tokens)
        actual = hf_model(input_ids=tokens).logits
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-4)


def test_hf_greedy_generation_gives_our_tokens(exported, hf_model, tokenizer):
    loaded = load_model_dir(exported[0])
    prompt = tokenizer.encode(PROMPT_TEXT).ids
    n = 30
    ours = generate(loaded.model, prompt, SamplingConfig(max_new_tokens=n, temperature=0,
                                                         stop_token_id=loaded.end_of_text_id))
    input_ids = torch.tensor([prompt])
    with torch.no_grad():
        output = hf_model.generate(input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False,
                                   max_new_tokens=n)
    theirs = output[0, len(prompt):].tolist()
    if len(ours) < n:  # we stopped at end-of-text, which Hugging Face keeps in its output
        ours = ours + [loaded.end_of_text_id]
    assert theirs == ours


def test_auto_tokenizer_loads_with_special_tokens(exported, tokenizer):
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(exported[1])
    eot, pad = tokenizer.token_to_id(END_OF_TEXT), tokenizer.token_to_id(PAD)
    assert (hf_tokenizer.eos_token, hf_tokenizer.eos_token_id) == (END_OF_TEXT, eot)
    assert (hf_tokenizer.bos_token, hf_tokenizer.bos_token_id) == (END_OF_TEXT, eot)
    assert (hf_tokenizer.pad_token, hf_tokenizer.pad_token_id) == (PAD, pad)
    text = "The lighthouse keeper writes the weather."
    assert hf_tokenizer(text)["input_ids"] == tokenizer.encode(text).ids
    assert hf_tokenizer.decode(tokenizer.encode(text).ids) == text


def test_import_hf_gives_back_identical_weights(exported, tmp_path):
    source, out = exported
    original = load_model_dir(source)
    imported = import_hf(out, tmp_path / "imported")
    assert imported.config == original.config
    assert imported.end_of_text_id == original.end_of_text_id
    for name, tensor in original.model.state_dict().items():
        assert torch.equal(imported.model.state_dict()[name], tensor), name
    saved_again = load_model_dir(tmp_path / "imported")
    assert saved_again.config == original.config
    assert open_model_dir(out).config == original.config


def test_export_refuses_a_directory_that_is_not_empty(model_dir, tmp_path):
    (tmp_path / "other.txt").write_text("x")
    with pytest.raises(ModelDirError, match="not empty"):
        export_hf(model_dir(False), tmp_path)


def test_missing_and_malformed_files_are_one_line_errors(model_dir, trained_model, tokenizer, tmp_path):
    with pytest.raises(ModelDirError, match="not a directory"):
        load_model_dir(tmp_path / "nowhere")
    broken = save_model_dir(tmp_path / "broken", trained_model(False), tokenizer)
    (broken / "model.safetensors").unlink()
    with pytest.raises(ModelDirError, match=r"model\.safetensors: not found"):
        load_model_dir(broken)
    document = json.loads((broken / "model.json").read_text())
    document["config"]["n_heads"] = 3
    (broken / "model.json").write_text(json.dumps(document))
    with pytest.raises(ModelDirError, match=r"model\.json: config: dim=64 is not divisible by n_heads=3"):
        load_model_dir(broken)
    with pytest.raises(ModelDirError, match="neither model.json"):
        open_model_dir(tmp_path)
