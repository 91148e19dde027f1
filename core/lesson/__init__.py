"""The guided lesson over a results pack: pinned prompts followed across levels, six steps with
what to notice and a question each, the figure of each step, and a printable handout.

Contract: everything is read from the pack (``results.json`` summary and records, generated
images, ``defense.json``); the seed whose images are shown decides the pinned rows and their
groups (:mod:`core.lesson.pinned`). No Streamlit here: ``pages/lesson.py`` and ``pages/story.py``
draw these, ``implosion handout`` writes the handout.
"""

from core.lesson.notes import implosion_note
from core.lesson.pinned import (
    PinnedPrompts,
    last_open_level,
    pinned_images,
    pinned_prompts,
    play_levels,
    row_labels,
    row_roles,
    seed_drop,
)
from core.lesson.steps import LessonStep, lesson_steps, metric_at

__all__ = [
    "LessonStep",
    "PinnedPrompts",
    "implosion_note",
    "last_open_level",
    "lesson_steps",
    "metric_at",
    "pinned_images",
    "pinned_prompts",
    "play_levels",
    "row_labels",
    "row_roles",
    "seed_drop",
]
