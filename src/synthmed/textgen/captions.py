"""Captions and labels for text-to-image: re-exports the caption builder, and labels made from prompts."""

from __future__ import annotations

from synthmed.data.captions import DEFAULT_TEMPLATE, make_captions, template_fields

__all__ = ["DEFAULT_TEMPLATE", "label_from_prompt", "make_captions", "template_fields"]


def label_from_prompt(prompt: str, *, max_chars: int = 48) -> str:
    """Short label of a prompt-made image: its last comma-separated phrase ('chest x-ray, effusion' -> 'effusion')."""
    parts = [p.strip() for p in prompt.split(",") if p.strip()]
    label = (parts[-1] if parts else prompt.strip())[:max_chars].strip()
    return label or "prompt"
