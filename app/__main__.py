from app.cli import main

if __name__ == "__main__":  # not when a spawned worker process (multiprocessing) imports this module
    main()
