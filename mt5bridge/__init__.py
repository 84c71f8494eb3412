"""tradewatch package."""
