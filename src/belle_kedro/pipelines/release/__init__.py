"""The release pipeline: Hub-ready dataset and model folders with cards, and exports."""
