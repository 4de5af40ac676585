from mes.cli import app

app()
