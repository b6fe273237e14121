"""The business's own facts: the owner's facts file, the site importer, retrieval, the checks
on what is said, the inbox of gaps."""
