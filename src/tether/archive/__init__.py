"""Transcripts on disk: the live journal of each session and the archive of each ended one."""
