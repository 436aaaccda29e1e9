"""Shipped perception weights (detector, sign classifier) and their cards."""
