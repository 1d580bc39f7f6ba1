"""Labels made from prompts, and the caption builder re-exported for text-to-image."""

from synthmed.data.captions import make_captions as data_make_captions
from synthmed.textgen.captions import label_from_prompt, make_captions


def test_label_from_prompt():
    assert label_from_prompt("chest x-ray, left lower lobe effusion") == "left lower lobe effusion"
    assert label_from_prompt("pneumonia") == "pneumonia"
    assert label_from_prompt("  ") == "prompt"


def test_caption_builder_is_shared():
    assert make_captions is data_make_captions
