"""Local look-alikes of outside services (real servers on loopback) for tests and the demo."""
