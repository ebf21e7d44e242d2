"""Tools for policy authors and reviewers, built on the engine's public interface."""
