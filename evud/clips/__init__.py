"""clips"""
