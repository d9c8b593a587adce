"""Domain rules. No Flask request objects here: views pass what is needed."""
