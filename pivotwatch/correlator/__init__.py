"""correlator"""
