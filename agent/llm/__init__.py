"""agent/llm"""
