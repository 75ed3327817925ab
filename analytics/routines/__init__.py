"""Routines: what users ask for (profile, groupby, ...), built from aggregates and run on an engine."""
