import pytest
import torch

from model.generate import SamplingConfig, generate, next_token, stream_tokens

PROMPT_TEXT = "The river runs past the"


@pytest.fixture
def model(trained_model):
    return trained_model(False)


@pytest.fixture
def prompt(tokenizer):
    return tokenizer.encode(PROMPT_TEXT).ids


def test_greedy_tokens_are_the_same_with_and_without_the_cache(model, prompt):
    greedy = SamplingConfig(max_new_tokens=40, temperature=0)
    with_cache = generate(model, prompt, greedy, use_cache=True)
    without_cache = generate(model, prompt, greedy, use_cache=False)
    assert len(with_cache) == 40
    assert with_cache == without_cache


def test_seeded_sampling_repeats_and_matches_without_the_cache(model, prompt):
    sampling = SamplingConfig(max_new_tokens=25, temperature=0.9, top_k=20, top_p=0.9)

    def run(seed, use_cache=True):
        return generate(model, prompt, sampling, generator=torch.Generator().manual_seed(seed), use_cache=use_cache)

    assert run(1) == run(1) == run(1, use_cache=False)
    assert run(1) != run(2)


def test_top_k_1_and_tiny_top_p_are_greedy(model, prompt):
    greedy = generate(model, prompt, SamplingConfig(max_new_tokens=15, temperature=0))
    generator = torch.Generator().manual_seed(0)
    assert generate(model, prompt, SamplingConfig(max_new_tokens=15, top_k=1), generator=generator) == greedy
    assert generate(model, prompt, SamplingConfig(max_new_tokens=15, top_p=1e-6), generator=generator) == greedy


def test_top_k_and_top_p_only_sample_from_the_kept_tokens():
    torch.manual_seed(0)
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]]).log_softmax(-1)
    probs = logits.softmax(-1)[0]
    generator = torch.Generator().manual_seed(0)
    top_k = {int(next_token(logits, SamplingConfig(top_k=2), generator)) for _ in range(300)}
    assert top_k == {0, 1}
    # The first two tokens hold probs[0] + probs[1] of the mass; asking for a little less keeps both.
    top_p = SamplingConfig(top_p=float(probs[0] + probs[1]) - 1e-3)
    assert {int(next_token(logits, top_p, generator)) for _ in range(300)} == {0, 1}


def test_stop_token_ends_generation_and_is_not_yielded(model, prompt):
    free = generate(model, prompt, SamplingConfig(max_new_tokens=30, temperature=0))
    stop = free[5]
    stopped = generate(model, prompt, SamplingConfig(max_new_tokens=30, temperature=0, stop_token_id=stop))
    assert stopped == free[:free.index(stop)]


def test_stream_yields_each_token_as_it_is_chosen(model, prompt):
    seen = []
    tokens = generate(model, prompt, SamplingConfig(max_new_tokens=7, temperature=0), on_token=seen.append)
    assert seen == tokens and len(tokens) == 7
    stream = stream_tokens(model, prompt, SamplingConfig(max_new_tokens=7, temperature=0))
    assert next(stream) == tokens[0]


def test_generation_stops_at_the_context_length(model, prompt):
    room = model.config.max_seq_len - len(prompt)
    tokens = generate(model, prompt, SamplingConfig(max_new_tokens=room + 50, temperature=0))
    assert len(tokens) == room


def test_bad_sampling_settings_are_rejected():
    with pytest.raises(ValueError, match="top_p must be in"):
        SamplingConfig(top_p=1.5)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        SamplingConfig(temperature=-1)
