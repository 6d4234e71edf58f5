"""Sample inputs: the demo campaign and a commented config file."""
