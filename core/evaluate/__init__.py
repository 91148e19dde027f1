"""Scoring generations: the mini model's judge (:mod:`.judged`) and CLIP zero-shot scoring for
real models (:mod:`.clip`)."""
