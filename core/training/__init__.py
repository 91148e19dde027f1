"""Training: train-base (:mod:`.base`, :mod:`.stages`), the mini fine-tune (:mod:`.finetune`) and
the real-model fine-tune (:mod:`.real`, :mod:`.accelerate_train`)."""
