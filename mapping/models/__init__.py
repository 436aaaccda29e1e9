"""Shipped localizer weights (package data) and their card."""
