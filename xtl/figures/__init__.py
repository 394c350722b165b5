"""Figures and pages: interactive plotly figures drawn from analysis results, and the one-page
HTML report. Nothing upstream imports this package."""
