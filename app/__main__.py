from app.cli import app

if __name__ == "__main__":  # not when a spawned worker process (multiprocessing) imports this module
    app()
