"""train: supervised fine-tuning of one model per sample-size variant."""
