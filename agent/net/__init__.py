"""agent/net"""
