"""What two stages or more share: record columns, text similarity, the SFT template."""
