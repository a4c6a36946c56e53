"""review: BELLE's manual screening as a Label Studio round trip between clean and split."""
