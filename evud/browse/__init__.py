"""The static dataset browser: frame strips, the site's data and its page (stage `browse`)."""
