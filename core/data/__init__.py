"""Real image/caption datasets (:mod:`.captioned`) and their concepts (:mod:`.concepts`)."""
