"""Driving policies: the rule-based planner (baseline and fallback) and learned planners."""
