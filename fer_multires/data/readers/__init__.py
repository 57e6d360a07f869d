"""Dataset readers: one module per dataset format, each producing the same compact index.

Every reader returns split indices of parallel numpy arrays (video id, frame number, label in
canonical class order) and counts what it skipped by name; nothing is dropped silently.
"""
