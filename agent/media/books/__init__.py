"""agent/media/books"""
