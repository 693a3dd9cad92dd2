"""Local AWS for tests and the demo: moto server plus the project's own extension."""
