"""agent/media/tts"""
