"""Labels made from prompts, and the caption builder re-exported for text-to-image."""

from synthmed.latent.captions import make_captions as latent_make_captions
from synthmed.textgen.captions import label_from_prompt, make_captions


def test_label_from_prompt():
    assert label_from_prompt("chest x-ray, left lower lobe effusion") == "left lower lobe effusion"
    assert label_from_prompt("pneumonia") == "pneumonia"
    assert label_from_prompt("  ") == "prompt"


def test_caption_builder_is_shared():
    assert make_captions is latent_make_captions
