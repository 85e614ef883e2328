-- AlterTable
ALTER TABLE "Order" ADD COLUMN     "recipientPhone" TEXT;

-- CreateIndex
CREATE INDEX "User_phone_idx" ON "User"("phone");
