"""The renderers: one View of a Report (view), drawn as text, the HTML card and Markdown."""
