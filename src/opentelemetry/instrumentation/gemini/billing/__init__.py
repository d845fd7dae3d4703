"""What a call costs: prices as dated data (genai-prices, our extras in data/, a user's file) and
the book that prices a call's usage."""
