from chat_app.cli import main

main()
