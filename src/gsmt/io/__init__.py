"""Files in and out: bounded strict readers (`read`), atomic writes (`write`), output guards (`guard`)."""
