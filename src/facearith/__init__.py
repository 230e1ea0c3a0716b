"""facearith: face features in which identity and attribute (person, expression) add like vectors."""

__version__ = "0.1.0"
